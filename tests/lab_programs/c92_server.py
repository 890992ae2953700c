import hashlib
import json
import os.path
# 借助第三方的模块
import socket
import subprocess
import struct


def run_cmd(cmd):
    obj = subprocess.Popen(
        # 需要执行的命令
        cmd,
        # 执行的事 shell 命令行
        shell=True,
        # 将执行正确的结果放入管道中
        stdout=subprocess.PIPE,
        # 将执行错误的结果放入管道中
        stderr=subprocess.PIPE,
        # 对结果进行编码
        encoding="utf-8"
    )
    # 返回的结果
    true_result = obj.stdout.read()
    false_result = obj.stderr.read()

    return true_result if true_result else false_result


def read_data(file_name):
    file_path = os.path.join(os.path.dirname(__file__), file_name + '.png')
    with open(file_path, "rb") as fp:
        data = fp.read()
    return data


server = socket.socket(family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0)
addr = "127.0.0.1"
prot = 9696
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # 就是它，在bind前加
server.bind((addr, prot))
server.listen(5)
while True:
    # 用来获取到不同的客户端连接对象
    client_socket, client_addr = server.accept()
    print(f"客户端地址：{client_addr}")
    while True:
        try:
            # 持续的和当前链接好的客户端进行交互
            data_from_client = client_socket.recv(1024)
            # 判断客户端是否已经断开连接 如果客户端断开连接则这里接收到的数据是 空 就会一直循环
            if not data_from_client:
                break

            file_name = data_from_client.decode()
            # girl
            if file_name == "q":
                break
            # 下载图片数据到客户端本地
            file_data = read_data(file_name=file_name)
            # 统计二进制数据的大小
            data_to_client_bytes_len = len(file_data)
            print(data_to_client_bytes_len)
            # 验证数据的完整性 ---> md5 哈希值
            md5 = hashlib.md5()
            md5.update(file_data)
            # 拼接一个数据字典 ---> 携带当前文件的信息
            # 代文件名字 + md5 哈希值 + 文件类型
            file_data_dict = {
                "file_name": file_name,
                "file_type": "png",
                "file_hex": md5.hexdigest(),
                # 携带当前文件数据的大小
                "data_all": data_to_client_bytes_len
            }

            file_data_dict_str = json.dumps(file_data_dict)

            file_data_dict_bytes = file_data_dict_str.encode("utf-8")

            # 用 struct 模块将上面的 字节总数 打包成四个字节的二进制数据
            pack_data = struct.pack('i', len(file_data_dict_bytes))  # b'\xdb\x10\x00\x00'
            # 再去发送数据
            # 发送字典转成的二进制数据打包后的长度
            client_socket.send(pack_data)
            # 发送字典的二进制数据
            client_socket.send(file_data_dict_bytes)
            # 发送当前的文件数据
            client_socket.send(file_data)


        except Exception as e:
            break
    client_socket.close()
server.close()
