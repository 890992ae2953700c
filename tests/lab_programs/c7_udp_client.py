# 借助第三方模块
from socket import socket, AF_INET, SOCK_DGRAM

client = socket(family=AF_INET, type=SOCK_DGRAM)
addr = "127.0.0.1"
prot = 9696
while True:
    data_to_server = input("请输入给服务端的数据 :>>>> ").strip()
    # 判断当前客户端输入的内容是否是空数据
    # 如果是空数据就会导致服务端和和客户端阻塞
    if not data_to_server:
        continue
    client.sendto(data_to_server.encode("utf-8"), (addr, prot))
    data_from_server, server_addr = client.recvfrom(1024)
    print(f"data_from_server :>>>> {data_from_server.decode()}")
